// The replay page's script (placeholder: the sign-in form needs none).
"use strict";
