// The tests drive the system Chromium (CHROME_PATH or /usr/bin/chromium); never download a browser.
module.exports = { skipDownload: true };
