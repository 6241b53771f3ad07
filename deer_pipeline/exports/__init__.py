"""Exports for the tools biologists use: MegaDetector JSON, a sightings CSV, an HTML gallery.

Plain library code without Dagster; each module reads the database through a cursor.
"""
