"""The `*.schema.yml` loader, one module per concern: problem reporting, shared value
shapes, filters, fields, joins, aggregates and the document's top level.

`flusso.domain.config.schema_file` is the entry point other code imports.
"""
