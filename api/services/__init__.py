"""Services of the api app, split by noun: tokens, webhooks, exports."""
