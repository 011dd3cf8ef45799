"""One module per pipeline stage: the work behind `pipelines/<stage>.py`."""
