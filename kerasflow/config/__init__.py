"""Training recipes: the schema (``schema``, with its ``search:`` section in ``search_section``), its checking
machinery (``validation``), and reading, overriding and saving recipes (``loading``). None of it imports TensorFlow."""

from kerasflow.config.loading import load_recipe, recipe_from_dict, recipe_to_dict, save_recipe
from kerasflow.config.schema import Recipe

__all__ = ["Recipe", "load_recipe", "recipe_from_dict", "recipe_to_dict", "save_recipe"]
