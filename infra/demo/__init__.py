"""`persona demo`: the main job — months replayed through the live pipeline, told as a story."""
