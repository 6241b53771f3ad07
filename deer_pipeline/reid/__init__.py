"""Re-identification of individual deer: tracklets, gallery matching, metrics, review, training.

Plain library code without Dagster. ``train`` must also import without psycopg2 or ultralytics (it
runs on a bare GPU box), so this package imports nothing at package level.
"""
