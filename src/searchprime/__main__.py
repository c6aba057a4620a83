"""``python -m searchprime`` (e.g. ``accelerate launch -m searchprime train sft ...``)."""

from searchprime.cli.main import main

main()
