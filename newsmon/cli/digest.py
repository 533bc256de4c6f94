"""Commands added by the digest work (placeholder until it lands)."""
