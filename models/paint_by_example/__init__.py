"""Paint by Example, pure torch: the exemplar encoder, its CLIP vision tower, checkpoint layouts, inputs."""
