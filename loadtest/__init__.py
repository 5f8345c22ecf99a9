"""realtime-loadtest: load and soak testing for the OpenAI and Azure OpenAI Realtime API."""

__version__ = "0.1.0"
