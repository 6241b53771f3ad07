"""Re-ID backbone training on the synthetic world (GPU), its held-out evaluation and weight files.

``weights.py`` splits trained weights into parts small enough for the GPU machine's file transfer
and joins them again: a limit of our build machines, kept here in the workshop, never in the
product.
"""
