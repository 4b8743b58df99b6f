"""The main window's dockable panels. Each takes the Session, redraws on its signals and sets its frame; each
can render itself to an image (``snapshot``) for the screenshot export."""
