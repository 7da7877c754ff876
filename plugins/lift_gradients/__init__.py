"""Built-in plugin: image-gradient operators G of Eq. 13-14."""
