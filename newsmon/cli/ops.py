"""Commands added by the ops work (placeholder until it lands)."""
