# streetaudit: the CLI, the API (`streetaudit serve`) and the Prefect worker, in one image.
# Build: docker build -t streetaudit .   (docker compose builds it too)
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    STREETAUDIT_HOME=/app \
    STREETAUDIT_DATA_DIR=/data \
    STREETAUDIT_API_MAPLIBRE_DIR=/app/node_modules/maplibre-gl/dist

# npm: the map page's MapLibre GL is installed from the lock file and served by us (no CDN);
# postgresql-client: psql for the compose set-up step; gdal-bin: ogr2ogr/ogrinfo for users.
RUN apt-get update \
    && apt-get install -y --no-install-recommends npm postgresql-client gdal-bin \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# CPU wheels of PyTorch keep the image small; use a CUDA base image for GPU workers.
RUN pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu
COPY . .
RUN pip install .

RUN useradd --create-home --uid 1000 streetaudit && mkdir -p /data && chown streetaudit /data
USER streetaudit
EXPOSE 8000
CMD ["streetaudit", "serve", "--host", "0.0.0.0", "--port", "8000"]
