import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # stdlib up to 3.12
    except ImportError:  # 3.13+: the audioop-lts backport (test extra)
        import audioop  # type: ignore[no-redef]

__all__ = ["audioop"]
