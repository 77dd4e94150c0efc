"""WebSocket streaming: frame checks, throttling, segmentation, partial scheduling and the session."""
