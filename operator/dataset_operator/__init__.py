"""The DatasetJob operator (kopf): plans chunks, schedules Jobs, folds progress into status."""
