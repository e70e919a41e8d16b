"""Change events, document ids and document operations: the values the pipeline moves."""
