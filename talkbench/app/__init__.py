"""The app layer: the ``talkbench`` command, the demo, recipes, doctor. Imports every area; nothing imports it."""
