"""The shared kernel of Portico's services. Nothing here knows a business rule."""
