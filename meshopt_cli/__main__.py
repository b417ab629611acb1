from meshopt_cli.cli import main

main()
