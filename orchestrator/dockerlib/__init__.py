"""Docker engine helpers shared by the docker and swarm backends (labels and names, the
peer image, files into a container's data dir), so neither backend imports the other."""
