"""An app of your own, shipped in an image: see greeter.tasks and ../Dockerfile."""
