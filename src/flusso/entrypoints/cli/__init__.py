"""The `flusso` command line (rich-click). Human output goes through `console`."""
