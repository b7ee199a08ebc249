"""A plugin that fails while being imported."""
raise ImportError("this plugin is broken on purpose")
