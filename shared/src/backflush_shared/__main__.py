from backflush_shared.cli import main

main()
