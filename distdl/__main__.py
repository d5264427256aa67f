from distdl.cli import main

main()
