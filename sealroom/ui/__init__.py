"""The web dashboard (`sealroom ui`): server-rendered pages and the JSON they are built from.

Read-only without the token printed at start; actions need it. Every asset ships in the
package (no CDN): the dashboard works offline. Nothing here signs, holds a party's private
key or opens sealed data: it reads the workspace the operator already holds.
"""
