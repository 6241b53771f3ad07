"""The dynamic partitions ``camera_locations``: one key per top-level folder of the image root."""

import dagster as dg

camera_locations = dg.DynamicPartitionsDefinition(name="camera_locations")
