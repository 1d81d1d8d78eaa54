import warnings

from hypothesis import settings

# Property tests check results, not speed: no per-example deadline (a loaded machine, such as
# a 2-core CI runner building in parallel, would otherwise fail them at random).
settings.register_profile("voxwire", deadline=None)
settings.load_profile("voxwire")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # stdlib up to 3.12
    except ImportError:  # 3.13+: the audioop-lts backport (test extra)
        import audioop  # type: ignore[no-redef]

__all__ = ["audioop"]
