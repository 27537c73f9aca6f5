"""An in-process LRU of encoded tiles, keyed by ETag (which includes the data version).

Tiles change only when `stats refresh` bumps the data version, and a new version makes
new keys, so a cached tile is never stale; old versions simply age out.
"""

from __future__ import annotations

from collections import OrderedDict


class TileCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._tiles: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        tile = self._tiles.get(key)
        if tile is not None:
            self._tiles.move_to_end(key)
        return tile

    def put(self, key: str, tile: bytes) -> None:
        if len(tile) > self.max_bytes // 8 or key in self._tiles:
            return
        self._tiles[key] = tile
        self.bytes += len(tile)
        while self.bytes > self.max_bytes:
            _, old = self._tiles.popitem(last=False)
            self.bytes -= len(old)
