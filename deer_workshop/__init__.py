"""The workshop: what builds and measures the product but is not part of it.

The synthetic trail-camera world, model training and long measurements live here. The runtime
package ``deer_pipeline`` never imports ``deer_workshop``; the workshop imports the runtime freely.
"""
