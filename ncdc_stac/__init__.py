"""ncdc-stac: the application shell (command line and settings) around catalog/, publish/ and services/."""
