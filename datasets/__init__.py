"""Lightning DataModules: every dataset decoded once into in-memory tensors, served in batches."""
