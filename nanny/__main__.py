from nanny.cli import main

# Guarded: `serve --workers N` starts its workers with multiprocessing's spawn, which imports
# this module again in each child.
if __name__ == "__main__":
    raise SystemExit(main())
