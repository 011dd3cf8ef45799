"""The pipeline report: summary metrics, markdown, figures, plot data and comparison tables."""
