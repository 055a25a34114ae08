"""Device profiles for the ssh backend (YAML files shipped as package data)."""
