"""AI clients. They know nothing of Django models: prepared bytes, a prompt
and a plain vocabulary in, a validated result (or ProviderError) out."""
