"""disputes feature: due process for records (disputes with deadlines, statements,
certified reinsertion) and credit repair."""
