"""Wire format: dialects (GA, preview), targets (openai, azure GA, azure preview), auth."""
