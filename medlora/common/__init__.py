"""The floor every stage stands on: configuration and CLI, files and logs on disk, progress, schemas, text."""
