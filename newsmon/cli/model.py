"""Commands added by the model work (placeholder until it lands)."""
