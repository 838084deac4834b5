"""``python -m hepvld.unfold``: runs ``hepvld unfold`` (:mod:`hepvld.cli.unfold`).

``hepvld.unfold`` is the function :func:`hepvld.api.unfold`. This file exists only so that
``python -m hepvld.unfold`` keeps working; importing it as a module would rebind the
package attribute ``hepvld.unfold`` to this module, so an import is refused with a
message that says where to look instead.
"""

if __name__ == "__main__":
    import sys

    from hepvld.cli.unfold import main

    sys.exit(main(prog="python -m hepvld.unfold"))
else:
    raise ImportError(
        "hepvld.unfold is the function hepvld.api.unfold (use `from hepvld import unfold`); "
        "the command line is hepvld.cli.unfold (`hepvld unfold` or `python -m hepvld.unfold`), "
        "the ROOT writer hepvld.io.unfolded.write_unfolded"
    )
