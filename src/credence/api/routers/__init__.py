"""One thin router per feature: parse, authorise through the policy, call a service."""
