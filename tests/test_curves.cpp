#include <QtTest/QtTest>
class TestCurves : public QObject { Q_OBJECT };
QTEST_MAIN(TestCurves)
#include "test_curves.moc"
