"""Reading other inits' configuration (s6-overlay v3's s6-rc.d, supervisord.conf)
into service dirs pyinit supervises as its own."""
