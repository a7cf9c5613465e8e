"""Published tiers with hysteresis, and notifications when they change."""
