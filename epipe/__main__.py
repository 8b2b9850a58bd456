from epipe.cli import main

main()
