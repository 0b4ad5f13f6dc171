"""One module per family. A family registers itself (FamilySpec + named ModelEntries) when imported.

A module is listed here once its tests pass; `zoo.registry` imports them lazily on the first lookup.
"""
BUILTIN_FAMILIES: list[str] = ["vqgan", "titok", "imagefolder", "unitok", "alit", "convfsq", "diffusers_vae", "open_magvit2",
                               "ibq", "llamagen", "var_vqvae", "tokenflow"]
