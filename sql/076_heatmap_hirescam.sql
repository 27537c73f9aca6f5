-- HiResCAM (gradient times activation, element-wise) as a fourth heat-map method: on
-- detectors, Grad-CAM's channel-averaged gradients can be negative everywhere (an empty
-- map), while HiResCAM stays faithful to the box scores (Draelos & Carin, 2020).
ALTER TABLE streetaudit.heatmap DROP CONSTRAINT IF EXISTS heatmap_method_check;
ALTER TABLE streetaudit.heatmap
    ADD CONSTRAINT heatmap_method_check CHECK (method IN ('gradcam', 'gradcam++', 'eigencam', 'hirescam'));
