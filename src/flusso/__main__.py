from flusso.entrypoints.cli.main import main

main()
