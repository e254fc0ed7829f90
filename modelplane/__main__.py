from modelplane.cli.main import main

main()
