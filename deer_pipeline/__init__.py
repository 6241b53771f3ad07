"""deer_pipeline: trail-camera photos to individual deer."""
