"""The people's portal: public pages rendered on the server, in English and Simplified
Chinese (docs/web.md).

The pages read the published rulebook through :mod:`credence.rulebook` and are mounted
on the API's application by :func:`credence.portal.pages.install`, which is given the
pages' Content-Security-Policy by the API (one place for the security headers:
:mod:`credence.api.security_headers`). Templates, the stylesheet and the compiled
message catalogues ship in the package.
"""
